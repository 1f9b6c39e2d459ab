"""Input pipelines over tfds: `core` (shared by every pipeline), `images`, `audio`; offline builders in `builders`."""
