"""Step 3: stream-validate training data from local files, Supabase and the Hub."""
