"""The provincial platform: signed envelope, client, outbox, and a simulated platform for tests and the demo."""
