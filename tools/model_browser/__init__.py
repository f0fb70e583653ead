"""Step 1: find and pick a base model on the Hugging Face Hub."""
