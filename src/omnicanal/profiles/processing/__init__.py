"""The event processor's work on one batch; `omnicanal.profiles.processor` runs the loop."""
