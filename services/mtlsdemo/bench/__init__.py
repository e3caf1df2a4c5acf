"""``mtlsdemo bench``: speed as ratios against references measured in the same run."""
