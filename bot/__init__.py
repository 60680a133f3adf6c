"""tutorbot: a tutoring bot that teaches people to follow and judge an argument."""
