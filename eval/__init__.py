"""samtrack evaluation: ground-truth formats, MOT metrics, benchmark scenes and harness."""
