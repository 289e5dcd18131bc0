// Package datasets finds a class's images in a dataset layout, draws the
// noisy training split, and loads images and masks as model inputs
// exactly as the PyTorch reference does: PIL's Image.open(...).convert("RGB")
// for decoding, torchvision 0.14's Resize + CenterCrop (Pillow's BILINEAR
// resampler, bit-exact) for geometry, and ToTensor + Normalize for the
// float32 CHW tensor.
//
// The layouts (Format, docs/datasets.md): MVTec AD (also MPDD's), BTAD,
// MVTec-like folders, VisA (split CSV; masks whose defects are any
// non-zero value, Item.MaskNonZero and Preprocess.LoadItemMask), MVTec AD 2
// (with Class.Validation and the unlabelled Class.Unlabeled) and Real-IAD
// (split JSON, whose FUIAD variants put anomalous images into training).
// Load reads one class; Classes lists them; DetectFormat tells a class
// folder's layout; Summarize counts what Load found.
package datasets
