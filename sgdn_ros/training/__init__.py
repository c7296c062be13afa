"""Training SGDN: generated grasp scenes, label maps, the Cornell format and the grasp metric.

The data, label and metric modules need only NumPy and OpenCV; the training loop needs torch.
"""
