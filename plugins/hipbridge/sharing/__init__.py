"""Sharing lifecycle: the booking door, the shared store (数据回推), push-back verification, retention/deletion."""
