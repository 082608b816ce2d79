"""arena_rl: an offline arena for incentive-design research."""
