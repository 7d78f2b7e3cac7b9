# Realistic benchmark arm: the Nystrom head with its gate starting at 1
# instead of 0. At gamma = 0 the attention's weights get no gradient and the
# gate's first gradient is the correlation of a random context with the
# loss; starting at 1 the attention is trained from the first step
# (docs/nystrom.md, "Why the gate stays small").
_base_ = './nystrom_r18-tiny_1xb8-2k_collage-80x80.py'
model = dict(decode_head=dict(gamma_init=1.0))
