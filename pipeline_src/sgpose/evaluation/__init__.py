"""OKS keypoint evaluation."""
