"""Step 4: will it fit, how long will it take, what will it cost."""
