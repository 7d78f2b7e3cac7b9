"""End-to-end runs of the tools on converted COCO-Stuff data."""
