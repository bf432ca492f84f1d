"""Data: pair images and masks by stem, verify them, split them (``split_for``, the one way), decode and cache
arrays, augment, download Kvasir-SEG and make synthetic sets; raises ``DataError`` on bad data.

The package re-exports nothing (importing it loads no module): import each name from its module.

- ``folder.py``: ``resolve_data_dir`` (the one way to the dataset folder), ``DATA_ENV``, ``NO_DATA``
- ``io.py``: decoding images (RGB uint8) and masks ({0, 1}); the cache root
- ``discover.py``: ``Pair``, ``discover_pairs`` (pairing by stem), ``dataset_fingerprint``
- ``check.py``: ``check_dataset`` (``CheckReport``) and ``verify_dataset`` (remembered by fingerprint)
- ``splits.py``: ``Split``, split files, ``resolve_split_file``, ``split_for``
- ``cache.py``: decode and resize once into ``.npy``, memory-mapped afterwards
- ``augment.py``: ``PRESETS``, ``build_transform`` (albumentations; imports it)
- ``device_augment.py``: ``DeviceBatches``, batching and the ``basic`` preset on the device (imports torch)
- ``dataset.py``: ``SegmentationArrays``, a torch ``Dataset`` over cached arrays (imports torch)
- ``synth.py``: ``make_synthetic``, polyp-like sets in the Kvasir-SEG layout
- ``download.py``: ``download_dataset``, fetch, verify and unpack Kvasir-SEG
"""
