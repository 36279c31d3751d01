"""Notifications: the outbox table and the channels that deliver it."""
