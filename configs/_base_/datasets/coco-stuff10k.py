# COCO-Stuff10k: 9k train / 1k test images, 171 classes. Our converter
# (tools/convert_coco_stuff.py --source 10k) writes the same train ids as the
# 164k set (0-170, 255 = ignore), so reduce_zero_label stays False (mmseg's own
# 10k converter writes 1-171 with 0 = unlabeled instead).
_base_ = './coco-stuff164k.py'
data_root = 'data/coco_stuff10k'
train_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        reduce_zero_label=False,
        data_prefix=dict(
            img_path='images/train2014',
            seg_map_path='annotations/train2014')))
val_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        reduce_zero_label=False,
        data_prefix=dict(
            img_path='images/test2014', seg_map_path='annotations/test2014')))
test_dataloader = val_dataloader
