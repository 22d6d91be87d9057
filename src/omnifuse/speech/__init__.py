"""Speech: text-to-speech through system engines, noise for robustness data; ASR lives here later."""
