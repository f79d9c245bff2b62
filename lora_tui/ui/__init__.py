"""The Textual app. Import `lora_tui.ui.app.run_app`; nothing here is imported eagerly so `lora_tui.ui` stays cheap."""
