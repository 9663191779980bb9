"""Image folders, the poison plan, and the (poisoned) datasets built from them."""
