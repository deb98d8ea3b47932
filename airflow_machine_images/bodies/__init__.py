"""Request bodies: the MachineImage and Instance resources the operators send, their labels and key arguments."""
