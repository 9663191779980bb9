# GPU image: the pinned PyTorch wheels bundle their CUDA libraries, so a slim Python base is enough
# (the host needs the NVIDIA driver and the NVIDIA Container Toolkit: docker run --gpus all ...).
FROM python:3.11-slim

# Optional W&B API key baked into the image, as in the paper's README (written to W&B's system settings
# file, readable by any user id). It stays in the image: for images you share, leave it out and use
# `docker run -e WANDB_API_KEY=...` instead.
# hadolint ignore=DL3064
ARG wandb_key=""

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HOME=/cache/huggingface \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache \
    MPLCONFIGDIR=/tmp/matplotlib \
    WANDB_CONFIG_DIR=/etc/wandb

RUN mkdir -p /etc/wandb \
    && if [ -n "$wandb_key" ]; then printf '[default]\napi_key = %s\n' "$wandb_key" > /etc/wandb/settings; fi \
    && chmod -R a+rwX /etc/wandb

WORKDIR /workspace
COPY requirements.txt /tmp/requirements.txt
RUN pip install -r /tmp/requirements.txt

COPY backdoor_attacks/ backdoor_attacks/
COPY benchmarks/ benchmarks/
COPY cli/ cli/
COPY config/ config/
COPY configs/ configs/
COPY datasets/ datasets/
COPY demo/ demo/
COPY detection/ detection/
COPY experiments/ experiments/
COPY models/ models/
COPY purifiers/ purifiers/
COPY training/ training/
COPY utils/ utils/
COPY variations/ variations/
COPY generate_variations.py train_teacher.py train_student.py run_pipeline.py collect_results.py \
     screen_triggers.py detect_poison.py ./

# Model caches (Versatile Diffusion, torchvision/timm weights) on a volume, writable for any user id
# (docker run --user "$(id -u):$(id -g)" ...), so downloads survive the container.
RUN mkdir -p /cache/huggingface /cache/torch && chmod -R a+rwX /cache /workspace
VOLUME ["/cache"]

CMD ["bash"]
