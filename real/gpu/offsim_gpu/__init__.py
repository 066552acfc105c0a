"""offsim GPU data collection (real/gpu/): PyTorch-only, no build step.

Run by real/gpu/run.sh on the GPU machine; every part also has a CPU dry-run so that all logic except the
CUDA calls is tested on machines without a GPU (real/gpu/tests/).
"""

FORMAT_VERSION = 1
