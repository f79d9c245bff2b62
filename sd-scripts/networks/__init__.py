"""sd-scripts-compatible `networks` package (`network_module = "networks.lora"`)."""
