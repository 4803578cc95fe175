"""aidi.analysis"""
