"""Write a ResNet-10 image encoder with random weights to a folder, for offline runs.

The shipped configs use the hub encoder ``helper2424/resnet10`` (the HIL-SERL default) in the
reward classifier (``reward_model.model_name``) and the policy (``policy.vision_encoder_name``);
both are loaded with ``transformers.AutoModel.from_pretrained``, which also takes a local folder.
This writes one with the same layout (a ResNet of four basic stages of one block each, 64 to 512
channels, a 4x4 map for 128x128 images) and random weights, so the hardware-free dry run needs
no network::

    python -m lerobot_policy_e2hil.so101.local_encoder outputs/resnet10_random
    lerobot-train --config_path HIL-SERL/reward_classifier_train_config.json \\
        --reward_model.model_name=outputs/resnet10_random
"""

import argparse
from pathlib import Path

#: ResNet-10: four stages of one basic block each.
STAGE_DEPTHS = (1, 1, 1, 1)
STAGE_WIDTHS = (64, 128, 256, 512)


def write_random_resnet10(output: str | Path, seed: int = 0) -> Path:
    """Save a randomly initialised ResNet-10 (``transformers`` ``ResNetModel``) to ``output``.

    Args:
        output: Folder to write ``config.json`` and the weights to (created if missing).
        seed: Torch seed of the initialisation.

    Returns:
        The folder.
    """
    import torch
    from transformers import ResNetConfig, ResNetModel

    torch.manual_seed(seed)
    config = ResNetConfig(
        embedding_size=STAGE_WIDTHS[0],
        hidden_sizes=list(STAGE_WIDTHS),
        depths=list(STAGE_DEPTHS),
        layer_type="basic",
    )
    path = Path(output)
    ResNetModel(config).save_pretrained(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m lerobot_policy_e2hil.so101.local_encoder <folder>``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="folder to write the encoder to")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the random weights")
    args = parser.parse_args(argv)
    print(write_random_resnet10(args.output, args.seed))


if __name__ == "__main__":
    main()
