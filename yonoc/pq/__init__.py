"""Product quantisation: k-means and shared codebooks."""
