"""Images and tables: the methods on input tensors, their baselines and layers, localisation, uploads,
global importance and the gallery the Explain page shows."""
