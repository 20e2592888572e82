"""The store: runs read and edited, the filter grammar, reductions, bulk writes, faults of the database."""
