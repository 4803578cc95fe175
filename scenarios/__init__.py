"""aidi.scenarios"""
