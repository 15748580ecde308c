"""`vision-synth tune`: search generation settings by measuring their utility on the user's own real data."""
