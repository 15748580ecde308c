"""COCO datasets: validating reader, shard writer and streaming merge."""
