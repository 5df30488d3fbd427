"""Decoding by content: sniffing, safe image loading, folder walking."""
