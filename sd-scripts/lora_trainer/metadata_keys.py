"""Safetensors metadata keys our tiny checkpoints carry (kept torch-free so the loader's checks stay cheap)."""
CONFIG_METADATA_KEY = "lora_tui_diffusers_config"  # JSON {"unet": {...}, "vae": {...}, "text_encoder": {...}, ...}
FAMILY_METADATA_KEY = "lora_tui_family"  # "sdxl" or "sd1"
