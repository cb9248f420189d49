package config

// validateBlockingPods and validateHandsOff check blocking_pods and
// hands_off.
func validateBlockingPods(prefix string, b *BlockingPods) error { return nil }

func validateHandsOff(prefix string, h *HandsOff) error { return nil }
