"""Repair appointments: slots, booking, reminders, and the chat actions."""
