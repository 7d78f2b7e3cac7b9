# Realistic benchmark arm: the Nystrom head with its context branch switched
# off. The gate gamma starts at 0 and never moves (learning rate 0), so
# y + gamma * attention(norm(y)) is y and the attention gets no gradient;
# the rest of the head (3x3 convs, concatenation, c1 decoder) is unchanged.
_base_ = './nystrom_r18-tiny_1xb8-2k_collage-80x80.py'
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'decode_head.gamma': dict(lr_mult=0., decay_mult=0.)}))
