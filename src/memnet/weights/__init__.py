"""Weight files and the released models (the `.safetensors` files here are the zoo's)."""
