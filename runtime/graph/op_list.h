// The graph IR's ops, one line each: MIGHTY_OP(Name). Each expands to OpKind::kName (graph.h) and to the op's
// definition kNameOp (runtime/ops/, name "Name" in the artifact). The order is the enum's; append new ops.
// Adding an op: docs/design.md, "Adding an op".
MIGHTY_OP(Input)
MIGHTY_OP(Linear)
MIGHTY_OP(Conv2d)
MIGHTY_OP(BatchNorm2d)
MIGHTY_OP(ReLU)
MIGHTY_OP(GELU)
MIGHTY_OP(MaxPool2d)
MIGHTY_OP(AvgPool2d)
MIGHTY_OP(GlobalAvgPool)
MIGHTY_OP(Flatten)
MIGHTY_OP(Add)
MIGHTY_OP(Embedding)
MIGHTY_OP(EmbeddingBag)
MIGHTY_OP(LayerNorm)
MIGHTY_OP(MultiHeadAttention)
MIGHTY_OP(Softmax)
