"""The hybrid memory: shards (Tantivy + usearch), embedders, fusion, episodes, evaluation."""
