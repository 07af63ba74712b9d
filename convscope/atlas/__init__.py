"""The atlas: every channel of chosen layers with its pictures, dataset examples, statistics and links, written
as files a static site shows (after OpenAI Microscope, https://openai.com/research/microscope)."""
