"""Model building blocks shared by the papers.

activations  ACTIVATIONS, make_activation: activations by name, some with per-channel parameters.
resnet       RESNETS, make_resnet, ResNet: one ResNet family with a pluggable spatial layer and activation.
counting     count_params, count_flops, count_model_flops: the sizes a paper's `--dry_run` prints.
"""
