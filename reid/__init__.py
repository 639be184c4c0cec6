"""samtrack re-identification: appearance embeddings, motion, association and identity repair."""
