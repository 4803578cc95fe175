"""aidi.models"""
