"""aidi.sim"""
