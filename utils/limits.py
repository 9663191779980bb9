"""Hard bounds on sizes that configs and files may ask for, checked before anything is allocated."""

MAX_IMAGE_SIZE = 4096  # pixels per side: 8× ImageNet's 512 px crops; a 100000-px request would allocate ~30 GB
MAX_CLASSES = 100_000  # classes of a classifier head: ImageNet-21k has 21,841; a forged 10**9 would need 2 TB
