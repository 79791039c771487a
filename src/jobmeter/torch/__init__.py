"""``jobmeter.torch``: measure PyTorch modules (work in progress)."""
