"""Image-classification data: `images.load_image_dataset` over tfds, with offline builders in `builders`."""
