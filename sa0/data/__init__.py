"""Data: the clip contract, shards, converters, synthetic clips, Ray Data streaming."""
