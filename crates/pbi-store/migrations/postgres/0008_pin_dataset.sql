-- The dataset behind each pinned tile (the company filter lists its Company[ID] values).
ALTER TABLE pins ADD COLUMN dataset_id TEXT;
