"""Speech: text-to-speech through system engines and noise for robustness data."""
