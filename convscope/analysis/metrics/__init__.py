"""The evaluation metrics of explanations, one module per family, each a batched torch function.

Every metric takes a model's pictures ``x`` ``[B,C,H,W]`` (as the model takes them), their classes ``y`` and
attributions ``[B,H,W]`` / ``[B,1,H,W]`` / ``[B,C,H,W]`` (channels are summed: a pixel is one feature), or masks for
localisation, or an explain function for the metrics that explain again. Each agrees with Quantus 0.6 where
Quantus follows its paper (tests/test_metrics_*.py); docs/evaluation.md says where it does not.
"""
