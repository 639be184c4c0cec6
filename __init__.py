"""samtrack: stable identities for look-alike objects segmented by SAM2 (or any segmenter)."""
