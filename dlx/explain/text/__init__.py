"""Text: sentences as word pieces (`tokens`) and how the attribution methods run on them (`methods`)."""
