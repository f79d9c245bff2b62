"""The run layer: starting, following, stopping and re-attaching training jobs; a persistent queue; progress
parsed from trainer output. No textual and no torch here (the UI wraps these in widgets; the trainer is a
separate process). Imports stay in the modules, so the job supervisor starts fast."""
