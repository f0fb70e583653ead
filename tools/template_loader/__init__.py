"""Step 2: turn the user's intent into a training configuration known to be sane."""
