"""Fast forms: every custom VJP and layout trick of the package, each beside its plain reference.

The networks in ``fgsm_jax.models`` are written with plain Flax layers; their fast variants are
the same modules built with the blocks below (same parameter trees, so checkpoints load
either way). Each fast form has a test in ``tests/ops`` that it equals its reference in values
and gradients.

  layout          NHWC/HWIO dimension numbers, space-to-depth, kernel flips, first-argmax
                  over pooling windows (shared by the forms below).
  conv            ``conv2d`` / ``Conv``: nn.Conv with a hand-written input gradient (fast
                  inside ``lax`` loops on XLA:CPU), a folded per-channel scale, and
                  space-to-depth / one-position forms; ``fast=False`` is plain XLA.
  depthwise       ``depthwise_conv2d`` / ``DepthwiseConv``: a depthwise (per-channel) conv as
                  a sum of shifted views with a hand-written VJP (XLA:CPU's grouped conv is
                  ~20x slower); ``fast=False`` / ``PlainDepthwiseConv`` is plain XLA.
  pool            ``max_pool``: VALID max pooling whose gradient goes to the first maximum by
                  strided slices, not ``select_and_scatter``; ``max_pool_reference`` is plain.
  conv_relu_pool  ``conv_relu_maxpool`` / ``FusedConvReluPool``: Keras' Conv2D(same, relu) +
                  MaxPooling2D as one op with a hand-written VJP (the original CNN's blocks);
                  ``reference`` is plain.

To add a fast form: write it here beside a plain reference with the same signature, give the
model a field for the block (``conv: ModuleDef``), and add a test in ``tests/ops`` that the two
agree in values and gradients (and in ``tests/models`` that the model's variants agree).
"""
from fgsm_jax.ops.conv import Conv, PlainConv, conv2d
from fgsm_jax.ops.depthwise import DepthwiseConv, PlainDepthwiseConv, depthwise_conv2d
from fgsm_jax.ops.conv_relu_pool import FusedConvReluPool, conv_relu_maxpool
from fgsm_jax.ops.pool import max_pool, max_pool_reference
